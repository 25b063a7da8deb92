"""Outbound webhooks per the Standard Webhooks spec, with no knowledge of what the events mean."""
