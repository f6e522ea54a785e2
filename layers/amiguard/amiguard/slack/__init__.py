"""Slack: Block Kit messages for findings (pure, :mod:`.blocks`) and the incoming-webhook adapter (:mod:`.webhook`)."""
