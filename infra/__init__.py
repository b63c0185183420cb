"""Deployment: the CloudFormation template and deploy scripts, and the local stack."""
