-- What was sold, when the source says (Gumroad product_id, a manual entry's product); NULL when
-- unknown. Mirrors revenue_facts.product in ClickHouse (deploy/clickhouse/0030_analytics.sql).
ALTER TABLE revenue_ledger ADD COLUMN product text;
