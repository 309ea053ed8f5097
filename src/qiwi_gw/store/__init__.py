"""SQL, one module per table. Every statement is a constant with ``$n`` parameters."""
