package chaos

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDockerRefusesDynamicBinary: an image FROM scratch has no dynamic
// loader, so --docker with a dynamically linked node binary (and no
// --docker-image) fails validation, naming the fix.
func TestDockerRefusesDynamicBinary(t *testing.T) {
	if static, err := IsStatic("/bin/sh"); err != nil || static {
		t.Skipf("/bin/sh is not a dynamic ELF executable here (static %v, %v)", static, err)
	}
	cfg := DefaultConfig()
	cfg.Binary, cfg.Docker = "/bin/sh", true
	err := cfg.Validate()
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("Validate: %v, want ErrConfig naming CGO_ENABLED=0", err)
	}
	cfg.DockerImage = "sluice-node:dev"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("with --docker-image the binary is not used: %v", err)
	}
	cfg.Docker = false
	if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
		t.Fatalf("--docker-image without --docker: %v, want ErrConfig", err)
	}
}

// TestDockerNoEngine: where `docker info` fails, a --docker run stops at
// once with ErrNoDocker, before it makes anything.
func TestDockerNoEngine(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	cfg := DefaultConfig()
	cfg.Docker, cfg.DockerImage, cfg.Dir, cfg.Duration = true, "sluice-node:dev", t.TempDir(), 10*time.Second
	start := time.Now()
	_, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrNoDocker) || !strings.Contains(err.Error(), "Cannot connect") {
		t.Fatalf("Run: %v, want ErrNoDocker with docker's reason", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to give up", d)
	}
}
