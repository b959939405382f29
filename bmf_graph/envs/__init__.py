"""Environments: Firefighter, Battle and Adversarial Pursuit."""
