// Command dtgo-pg serves durabletask-go's sidecar gRPC API (TaskHubSidecarService) over its own PostgreSQL
// backend (backend/postgres of the durabletask-go module), wired the way durabletask-go's main.go wires its
// SQLite backend: a gRPC executor registered on a grpc.Server, an orchestration worker and an activity worker,
// one task hub worker. Nothing of durabletask-go is copied here; the module is imported at the version pinned in
// go.mod.
//
//	dtgo-pg -store "host=127.0.0.1 port=5432 user=u dbname=d" [-host 127.0.0.1] [-port 0]
//	        [-max-conns 1] [-parallelism 1]
//
// -store is a PostgreSQL URI or keyword/value conninfo (pgxpool.ParseConfig). The pool gets the settings
// postgres.NewPostgresOptions gives it (2 min connect timeout, idle time and lifetime; one connection) unless
// -max-conns says otherwise; -parallelism is the MaxParallelWorkItems of both workers (durabletask-go's default
// is 1). The defaults reproduce durabletask-go as shipped. Once listening it prints
// "server listening at HOST:PORT" (as durabletask-go's own main does; -port 0 picks a free port). SIGTERM or
// SIGINT stops it: the gRPC server, then the task hub worker; it exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	"github.com/microsoft/durabletask-go/backend"
	"github.com/microsoft/durabletask-go/backend/postgres"
)

func main() {
	store := flag.String("store", "", "PostgreSQL URI or conninfo (required)")
	host := flag.String("host", "127.0.0.1", "address to bind")
	port := flag.Int("port", 0, "port to bind (0: a free one)")
	maxConns := flag.Int("max-conns", 1, "connections in the backend's pool (postgres.NewPostgresOptions uses 1)")
	parallelism := flag.Int("parallelism", 1, "work items each worker processes at once (durabletask-go's default: 1)")
	flag.Parse()
	if *store == "" || *maxConns < 1 || *parallelism < 1 {
		flag.Usage()
		os.Exit(2)
	}

	conf, err := pgxpool.ParseConfig(*store)
	if err != nil {
		log.Fatalf("bad -store: %v", err)
	}
	// The same pool settings as postgres.NewPostgresOptions, which only takes host/port/user/password.
	conf.ConnConfig.Config.ConnectTimeout = 2 * time.Minute
	conf.MaxConnLifetime = 2 * time.Minute
	conf.MaxConnIdleTime = 2 * time.Minute
	conf.MaxConns = int32(*maxConns)
	opts := &postgres.PostgresOptions{
		PgOptions:                conf,
		OrchestrationLockTimeout: 2 * time.Minute,
		ActivityLockTimeout:      2 * time.Minute,
	}

	logger := backend.DefaultLogger()
	be := postgres.NewPostgresBackend(opts, logger)
	grpcServer := grpc.NewServer()
	executor, registerFn := backend.NewGrpcExecutor(be, logger)
	registerFn(grpcServer)
	par := backend.WithMaxParallelism(int32(*parallelism))
	orchestrationWorker := backend.NewOrchestrationWorker(be, executor, logger, par)
	activityWorker := backend.NewActivityTaskWorker(be, executor, logger, par)
	worker := backend.NewTaskHubWorker(be, orchestrationWorker, activityWorker, logger)

	ctx := context.Background()
	// Start creates the task hub (the schema, idempotently) and starts polling.
	if err := worker.Start(ctx); err != nil {
		log.Fatalf("failed to start worker: %v", err)
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		log.Fatalf("failed to listen: %v", err)
	}
	fmt.Printf("server listening at %v\n", lis.Addr())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	go func() { served <- grpcServer.Serve(lis) }()
	select {
	case err := <-served:
		log.Fatalf("failed to serve: %v", err)
	case <-sigs:
	}
	grpcServer.Stop() // ends the workers' streams and pending waits at once
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := worker.Shutdown(sctx); err != nil {
		log.Printf("shutdown: %v", err)
	}
}
