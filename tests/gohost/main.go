// Command gohost is a test-only go-plugin host for pybundle: it launches a
// bundle executable the way the Airflow Go Edge Worker does (go-plugin gRPC,
// plugin "dag-bundle", app protocol 1, Airflow's magic cookie, no AutoMTLS),
// calls GetMetadata and optionally Execute, then Kill()s the plugin.
//
// Everything it reports goes to stdout as one JSON object per line; go-plugin's
// own host logging (including the plugin's re-logged stderr) goes to stderr.
//
// The apache/airflow go-sdk module is not obtainable from the module proxy
// available to this project, so this host does not import the go-sdk's
// shared/bundlev1client packages. It is built on hashicorp/go-plugin v1.7.0
// (the version the go-sdk pins) with the same handshake values and plugin map,
// and a locally generated bundle.v1 client (see protov1/). It says so in its
// first output line.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"gohost/protov1"
)

// Values of the Airflow go-sdk (pkg/bundles/shared/handshake.go, discovery.go).
const (
	appProtocolVersion = 1
	cookieKey          = "AIRFLOW_BUNDLE_MAGIC_COOKIE"
	cookieValue        = "23C6AB18-91F9-4760-B3E8-328EF3C861AB"
	pluginName         = "dag-bundle"
)

const implNotice = "FALLBACK: github.com/apache/airflow/go-sdk is not available from the module proxy; " +
	"this host uses hashicorp/go-plugin v1.7.0 with Airflow's handshake values, plugin map and a " +
	"locally generated bundle.v1 client instead of the go-sdk's own client packages"

var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  appProtocolVersion,
	MagicCookieKey:   cookieKey,
	MagicCookieValue: cookieValue,
}

// dagBundlePlugin is the host side of the "dag-bundle" plugin: client only.
type dagBundlePlugin struct {
	plugin.Plugin
}

func (dagBundlePlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("gohost only implements the client side")
}

func (dagBundlePlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return protov1.NewDagBundleClient(c), nil
}

var _ plugin.GRPCPlugin = dagBundlePlugin{}

// Workload JSON, shaped like the Edge Executor job "command" that the Edge
// Worker decodes and forwards. Pointer = optional (absent stays absent).
type workloadJSON struct {
	Token string `json:"token"`
	TI    struct {
		ID        string  `json:"id"`
		DagID     string  `json:"dag_id"`
		RunID     string  `json:"run_id"`
		TaskID    string  `json:"task_id"`
		MapIndex  *int    `json:"map_index"`
		TryNumber int     `json:"try_number"`
		Hostname  *string `json:"hostname"`
	} `json:"ti"`
	BundleInfo struct {
		Name    string  `json:"name"`
		Version *string `json:"version"`
	} `json:"bundle_info"`
	LogPath *string `json:"log_path"`
}

func buildExecuteRequest(raw string) (*protov1.Execute_Request, error) {
	if strings.HasPrefix(raw, "@") {
		b, err := os.ReadFile(raw[1:])
		if err != nil {
			return nil, err
		}
		raw = string(b)
	}
	var w workloadJSON
	dec := json.NewDecoder(strings.NewReader(raw))
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("bad -execute-json: %w", err)
	}
	// The edge worker holds ti.id as a UUID and re-renders it canonically
	// (lower case); keep unparsable ids verbatim so servers' InvalidArgument
	// path can be exercised.
	id := w.TI.ID
	if u, err := uuid.Parse(id); err == nil {
		id = u.String()
	}
	ti := protov1.TaskInstance_builder{
		Id:        protov1.UUID_builder{Value: &id}.Build(),
		DagId:     &w.TI.DagID,
		RunId:     &w.TI.RunID,
		TaskId:    &w.TI.TaskID,
		Hostname:  w.TI.Hostname,
		TryNumber: ptr(int32(w.TI.TryNumber)),
	}
	if w.TI.MapIndex != nil {
		ti.MapIndex = ptr(int32(*w.TI.MapIndex))
	}
	task := protov1.ExecuteTaskWorkload_builder{
		Token: &w.Token,
		Ti:    ti.Build(),
		BundleInfo: protov1.BundleInfo_builder{
			Name:    &w.BundleInfo.Name,
			Version: w.BundleInfo.Version,
		}.Build(),
		LogPath: w.LogPath,
	}
	return protov1.Execute_Request_builder{Task: task.Build()}.Build(), nil
}

func ptr[T any](v T) *T { return &v }

var out = json.NewEncoder(os.Stdout)

func emit(fields map[string]any) { _ = out.Encode(fields) }

func emitErr(stage string, err error) {
	m := map[string]any{"event": "error", "stage": stage, "message": err.Error()}
	if s, ok := status.FromError(err); ok {
		m["grpc_code"] = s.Code().String()
		m["message"] = s.Message()
	}
	emit(m)
}

func main() { os.Exit(run()) }

func run() int {
	bundle := flag.String("bundle", "", "path to the bundle executable (required)")
	doPing := flag.Bool("ping", false, "health-check the plugin (Client.Ping) before dispensing")
	doMeta := flag.Bool("metadata", true, "call GetMetadata")
	execJSON := flag.String("execute-json", "", "call Execute with this workload JSON (or @file)")
	timeout := flag.Duration("timeout", 30*time.Second, "deadline for each RPC (0 = none, like the edge worker)")
	startTimeout := flag.Duration("start-timeout", time.Minute, "go-plugin StartTimeout (edge worker: default 1m)")
	logLevel := flag.String("log-level", "info", "host hclog level (trace|debug|info|warn|error|off)")
	pluginStderr := flag.String("plugin-stderr", "", "also copy the plugin's raw stderr to this file")
	flag.Parse()

	emit(map[string]any{"event": "notice", "impl": "go-plugin-v1.7.0-fallback", "message": implNotice})

	if *bundle == "" || flag.NArg() != 0 {
		emit(map[string]any{"event": "error", "stage": "usage", "message": "usage: gohost -bundle PATH [-ping] [-metadata=false] [-execute-json JSON|@file] [-timeout 30s]"})
		return 2
	}

	var req *protov1.Execute_Request
	if *execJSON != "" {
		var err error
		if req, err = buildExecuteRequest(*execJSON); err != nil {
			emitErr("usage", err)
			return 2
		}
	}

	cfg := &plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Cmd:              exec.Command(*bundle),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		VersionedPlugins: map[int]plugin.PluginSet{
			appProtocolVersion: {pluginName: dagBundlePlugin{}},
		},
		StartTimeout: *startTimeout,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "gohost",
			Output: os.Stderr,
			Level:  hclog.LevelFromString(*logLevel),
		}),
	}
	if *pluginStderr != "" {
		f, err := os.Create(*pluginStderr)
		if err != nil {
			emitErr("usage", err)
			return 2
		}
		defer f.Close()
		cfg.Stderr = io.Writer(f)
	}
	client := plugin.NewClient(cfg)

	rc := func() int {
		rpc, err := client.Client()
		if err != nil {
			emitErr("start", err)
			return 1
		}
		started := map[string]any{"event": "started", "negotiated_version": client.NegotiatedVersion(), "protocol": string(client.Protocol())}
		if rcfg := client.ReattachConfig(); rcfg != nil {
			started["pid"] = rcfg.Pid
			if rcfg.Addr != nil {
				started["network"] = rcfg.Addr.Network()
				started["address"] = rcfg.Addr.String()
			}
		}
		emit(started)

		if *doPing {
			if err := rpc.Ping(); err != nil {
				emitErr("ping", err)
				return 1
			}
			emit(map[string]any{"event": "ping", "ok": true})
		}

		raw, err := rpc.Dispense(pluginName)
		if err != nil {
			emitErr("dispense", err)
			return 1
		}
		dag := raw.(protov1.DagBundleClient)

		ctxFor := func() (context.Context, context.CancelFunc) {
			if *timeout > 0 {
				return context.WithTimeout(context.Background(), *timeout)
			}
			return context.WithCancel(context.Background())
		}

		if *doMeta {
			ctx, cancel := ctxFor()
			resp, err := dag.GetMetadata(ctx, protov1.GetMetadata_Request_builder{}.Build())
			cancel()
			if err != nil {
				emitErr("metadata", err)
				return 1
			}
			b := resp.GetBundle()
			var version any
			if b.HasVersion() {
				version = b.GetVersion()
			}
			emit(map[string]any{
				"event": "metadata", "name": b.GetName(), "version": version,
				"has_version": b.HasVersion(), "has_name": b.HasName(), "has_bundle": resp.HasBundle(),
			})
		}

		if req != nil {
			ctx, cancel := ctxFor()
			t0 := time.Now()
			_, err := dag.Execute(ctx, req)
			cancel()
			s := status.Convert(err)
			emit(map[string]any{
				"event": "execute", "ok": err == nil, "grpc_code": s.Code().String(),
				"message": s.Message(), "seconds": time.Since(t0).Seconds(),
			})
			if err != nil {
				return 1
			}
		}
		return 0
	}()

	t0 := time.Now()
	client.Kill()
	emit(map[string]any{"event": "killed", "seconds": time.Since(t0).Seconds(), "exited": client.Exited()})
	return rc
}
