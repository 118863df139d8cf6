"""SAE loading through sae-lens (SAEManager, registry) and per-token analysis (SAEAnalyzer)."""
