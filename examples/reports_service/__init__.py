"""reports: a third-party Litestar service that adopts ksa-auth's server and client faces."""
