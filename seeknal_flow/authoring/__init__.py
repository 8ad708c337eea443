"""What users write: node specs (msgspec Structs), the decorators and their argument records, draft templates."""
