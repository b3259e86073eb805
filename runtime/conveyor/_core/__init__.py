"""Types shared by the engine and every adapter: records, events, ports, clock, codecs.

Nothing here knows how a workflow runs; it only names what the engine and the adapters exchange.
"""
