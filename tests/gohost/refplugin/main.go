// Command refplugin is a test-only Go "dag-bundle" plugin: a real
// hashicorp/go-plugin v1.7.0 server speaking bundle.v1.DagBundle with Airflow's
// handshake values. It stands in for the go-sdk example bundle (whose module is
// not obtainable here) so gohost can be checked against a genuine Go server.
// It implements only the plugin mode (no introspection flags).
//
// GetMetadata: name/version from -ldflags "-X main.bundleName=.. -X main.bundleVersion=.."
// (defaults example_dags / 0.0; an empty bundleVersion = unversioned bundle).
// Execute: echoes the received workload as one JSON log record on stderr and
// returns OK, except: non-task oneof -> Unimplemented; unparsable ti.id ->
// InvalidArgument; task_id "fail" -> Internal; task_id "sleep" -> waits for the
// call's context (then returns its error).
package main

import (
	"context"
	"errors"
	"os"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"gohost/protov1"
)

var (
	bundleName    = "example_dags"
	bundleVersion = "0.0"
)

type server struct {
	protov1.UnimplementedDagBundleServer
	log hclog.Logger
}

func (s *server) GetMetadata(context.Context, *protov1.GetMetadata_Request) (*protov1.GetMetadata_Response, error) {
	info := protov1.BundleInfo_builder{Name: &bundleName}
	if bundleVersion != "" {
		info.Version = &bundleVersion
	}
	return protov1.GetMetadata_Response_builder{Bundle: info.Build()}.Build(), nil
}

func (s *server) Execute(ctx context.Context, req *protov1.Execute_Request) (*protov1.Execute_Response, error) {
	if !req.HasTask() {
		return nil, status.Errorf(codes.Unimplemented, "unsupported workload %v", req.WhichWorkload())
	}
	task := req.GetTask()
	s.log.Info("execute", "workload", protojson.Format(task))
	if _, err := uuid.Parse(task.GetTi().GetId().GetValue()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "unable to parse UUID: %s", err)
	}
	switch task.GetTi().GetTaskId() {
	case "fail":
		return nil, status.Error(codes.Internal, "task asked to fail")
	case "sleep":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &protov1.Execute_Response{}, nil
}

type dagBundlePlugin struct {
	plugin.Plugin
	impl *server
}

func (p dagBundlePlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	protov1.RegisterDagBundleServer(s, p.impl)
	return nil
}

func (dagBundlePlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("server only")
}

func main() {
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: os.Stderr, JSONFormat: true})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  1,
			MagicCookieKey:   "AIRFLOW_BUNDLE_MAGIC_COOKIE",
			MagicCookieValue: "23C6AB18-91F9-4760-B3E8-328EF3C861AB",
		},
		Plugins:    plugin.PluginSet{"dag-bundle": dagBundlePlugin{impl: &server{log: logger}}},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}
