"""Simulation of the farm's side: miners that connect to the pool over TCP."""
