"""Test doubles that speak real protocols (HTTP servers on loopback), never mocks of our
own code."""
