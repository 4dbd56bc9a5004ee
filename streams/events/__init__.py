"""Event rules on results (Redis + Lua), their reference model, the events agent, alerts."""
