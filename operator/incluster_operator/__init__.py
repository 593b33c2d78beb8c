"""incluster's Kubernetes operator: Experiment resources -> pods with their context."""
