"""SQLite C API, resolved in the very library Python's sqlite3 module loaded."""
