"""The polling relay (`outbox.source = "poll"`): the outbox without binlog access.

It reads unsent rows of the outbox table in `seq` order with plain SELECTs, publishes them
with the binlog path's mapper, dead letters and publisher, waits until Kafka acknowledged every
record of the batch, and only then deletes (or marks) exactly those rows. One relay per
connector name is active at a time (a named lock on the server); the others wait to take over.
"""
