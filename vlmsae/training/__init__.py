"""Training SAEs on embedding stores."""
