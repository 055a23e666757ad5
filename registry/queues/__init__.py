"""Review queues: paged, sorted and searched listings, and decisions on many items at once."""
