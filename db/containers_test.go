package db

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestContainerExpiry: a container expires its minutes after it was last
// active, and use moves that on; an expired container shows as expired at
// once, ExpireContainers marks it (once) for its kernel to be stopped,
// and it can no longer be used; its files stay until it is deleted, when
// the files it made go with it and the client's stay.
func TestContainerExpiry(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s, c := openClocked(t)
		mine := addFile(t, s, "data.csv")
		ct, err := s.CreateContainer(ctx, Container{Name: "c", ExpiresAfter: ContainerExpiresAfter{Minutes: 2}, MemoryLimit: "1g"},
			[]string{mine.ID})
		if err != nil {
			t.Fatal(err)
		}
		made := addFile(t, s, "out.txt")
		if _, err := s.AddContainerFile(ctx, ContainerFile{ContainerID: ct.ID, FileID: made.ID, Path: "/mnt/data/out.txt",
			Source: "assistant", Bytes: made.Bytes, Owned: true}); err != nil {
			t.Fatal(err)
		}
		c.advance(90 * time.Second)
		if err := s.TouchContainer(ctx, ct.ID); err != nil {
			t.Fatal(err)
		}
		c.advance(90 * time.Second) // 3 minutes since creation, 1.5 since use
		if ids, err := s.ExpireContainers(ctx); err != nil || len(ids) != 0 {
			t.Fatalf("expired early: %v %v", ids, err)
		}
		c.advance(31 * time.Second)
		if got, _ := s.GetContainer(ctx, ct.ID); got.Status != "expired" {
			t.Errorf("status %q after its time", got.Status)
		}
		if err := s.TouchContainer(ctx, ct.ID); !errors.Is(err, ErrContainerExpired) {
			t.Errorf("touch after expiry: %v", err)
		}
		if ids, err := s.ExpireContainers(ctx); err != nil || !slices.Equal(ids, []string{ct.ID}) {
			t.Fatalf("ExpireContainers = %v, %v", ids, err)
		}
		if ids, err := s.ExpireContainers(ctx); err != nil || len(ids) != 0 {
			t.Errorf("expired twice: %v %v", ids, err)
		}
		files, err := s.AllContainerFiles(ctx, ct.ID)
		if err != nil || len(files) != 2 {
			t.Fatalf("files after expiry: %v %v", files, err)
		}
		if err := s.DeleteContainer(ctx, ct.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetFile(ctx, made.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("the file the container made outlived it: %v", err)
		}
		if _, err := s.GetFile(ctx, mine.ID); err != nil {
			t.Errorf("the client's file went with the container: %v", err)
		}
	})
}

// TestRunContainer: the container a run's code_interpreter {"type":
// "auto"} made is found by the run; a run makes at most one.
func TestRunContainer(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s, _ := openClocked(t)
		if _, err := s.RunContainer(ctx, "run_1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("no container yet: %v", err)
		}
		if _, err := s.CreateContainer(ctx, Container{Name: "api", ExpiresAfter: ContainerExpiresAfter{Minutes: 2}, MemoryLimit: "1g"}, nil); err != nil {
			t.Fatal(err)
		}
		ct, err := s.CreateContainer(ctx, Container{Name: "auto", RunID: "run_1", ExpiresAfter: ContainerExpiresAfter{Minutes: 2}, MemoryLimit: "1g"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.RunContainer(ctx, "run_1")
		if err != nil || got.ID != ct.ID || got.RunID != "run_1" {
			t.Fatalf("RunContainer = %+v, %v", got, err)
		}
		if _, err := s.CreateContainer(ctx, Container{Name: "auto", RunID: "run_1", ExpiresAfter: ContainerExpiresAfter{Minutes: 2}, MemoryLimit: "1g"}, nil); err == nil {
			t.Error("a second container for the run")
		}
	})
}
