"""Operators' view of the server: Prometheus metrics (`metrics`), request and lifecycle logs (`logs`).

Core-neutral: transports, the kernel and delivery call into these modules; they import nothing back.
"""
