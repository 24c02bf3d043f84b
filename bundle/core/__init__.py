"""The mode-independent core: authoring API, registry, task execution and the client interface.

Every runtime mode (introspection, coordinator, go-plugin) and ``bundle.testing`` build on these
modules; nothing here imports a mode, a wire codec, grpc or protobuf.
"""
