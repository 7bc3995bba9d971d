"""Exports of a synthesized IamPlan: Terraform JSON, a gcloud script, structured JSON."""
