"""Storage: the engine, the schema, versioned migrations and MariaDB's multi-row insert."""
