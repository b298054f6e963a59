"""Tests (a package, so test modules import each other and never shadow rag_model)."""
