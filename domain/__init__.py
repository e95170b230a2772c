"""The functional core: claims, identity, rules, policy, errors and ports (stdlib + msgspec)."""
