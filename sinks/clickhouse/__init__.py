"""ClickHouse analytics store: the revenue fact table, its DDL, and the reads the API runs.

Works unchanged against a ClickHouse server (http://) and embedded chdb (chdb:///path) through
clickhouse-connect; only one process may open a chdb path, so in the embedded default the
writer and the query API share one process and one client.
"""
