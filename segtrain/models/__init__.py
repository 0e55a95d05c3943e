"""Model registry: name -> builder."""
