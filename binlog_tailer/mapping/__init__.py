"""Pure mappers: row changes in, Kafka records out."""
