"""The app's panes: Tokens, Search and Steer. Each owns its view, its workers and its state."""
