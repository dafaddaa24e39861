"""Visitors' personal data: export, erasure, retention, the audit trail, PII kept from the model."""
