"""DuckDB warehouse: schema, migrations, all SQL, and the content-addressed image store."""
