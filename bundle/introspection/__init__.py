"""Introspection mode: the dumps a packer (or a human) asks a bundle for.

``dumps`` builds the documents; ``go_json`` and ``go_yaml`` encode them byte for byte the way a Go
bundle's ``encoding/json`` and ``gopkg.in/yaml.v3`` would. Nothing here starts a server or opens a
socket, and nothing here is imported by the coordinator or plugin modes.
"""
