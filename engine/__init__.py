"""tierdb: an embeddable, versioned (MVCC) storage engine with hot, warm and cold tiers."""
