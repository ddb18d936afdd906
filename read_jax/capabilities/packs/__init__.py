"""Capability template packs (data) and the deterministic builder of their seed pools."""
