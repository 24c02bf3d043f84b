"""Introspection mode: the dumps a packer (or a human) asks a bundle for.

``dumps`` builds the documents; ``go_json`` and ``go_yaml`` encode them byte for byte the way a Go
bundle's ``encoding/json`` and ``gopkg.in/yaml.v3`` would; ``serialization`` builds the bundle's
DagSerialization v3, the document Airflow's scheduler reads (parse mode answers with it, the packer's
DAG-file generator renders it, ``bundle-run`` runs by it). Nothing here starts a server or opens a
socket; the coordinator's parse mode imports ``serialization`` only when it parses.
"""
