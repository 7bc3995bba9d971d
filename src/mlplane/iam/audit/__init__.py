"""Audit: compare an IAM policy (from files, a live project or our own Terraform) with the model."""
