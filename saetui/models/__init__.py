"""Model loading (ModelWithHooks), architecture tables and hook plumbing."""
