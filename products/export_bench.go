package products

// SequenceSQLForBench is the statement of a sequencing round (see
// Store.sequence), for benchmarks that replay meshgate's SQL with pgbench.
const SequenceSQLForBench = sequenceSQL
