// Command winres writes the Windows version resource xcaddy v0.4.5 embeds in
// caddy.exe, so that a Windows build is byte-identical to xcaddy's. It is a
// copy of xcaddy's internal/utils.WindowsResource (same libraries at the same
// versions, same fields, xcaddy's own icon from its module) and of the
// `go list -m` call that gives it Caddy's version, which xcaddy keeps in an
// internal package another module cannot import.
//
// Usage (built, then run in this directory): winres -dir /work -arch amd64
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/josephspurrier/goversioninfo"

	// Not used: the import pins xcaddy's module (in go.mod and go.sum), whose
	// icon the resource carries.
	_ "github.com/caddyserver/xcaddy"
)

// xcaddyModule holds the icon at iconPath.
const (
	xcaddyModule = "github.com/caddyserver/xcaddy"
	iconPath     = "internal/utils/resources/ico/caddy.ico"
)

// caddyModule is the module whose version the resource carries.
const caddyModule = "github.com/caddyserver/caddy/v2"

func main() {
	dir := flag.String("dir", ".", "the build's main module directory; the .syso is written there")
	arch := flag.String("arch", "", "GOARCH of the target")
	output := flag.String("output", "caddy.exe", "the binary's file name, as xcaddy's -output")
	flag.Parse()
	version, err := caddyVersion(*dir)
	if err != nil {
		log.Fatalf("winres: %v", err)
	}
	xcaddyDir, err := goList(".", "-f", "{{.Dir}}", xcaddyModule)
	if err != nil {
		log.Fatalf("winres: %v", err)
	}
	icon := filepath.Join(xcaddyDir, iconPath)
	if err := windowsResource(version, *output, *dir, icon, *arch); err != nil {
		log.Fatalf("winres: %v", err)
	}
	fmt.Printf("winres: wrote resource_windows_%s.syso for Caddy %s\n", *arch, version)
}

// caddyVersion asks `go list -m` in the build's module, as xcaddy does: the
// version after `go get`, without a replacement's target.
func caddyVersion(dir string) (string, error) {
	out, err := goList(dir, caddyModule)
	if err != nil {
		return "", err
	}
	version := strings.TrimPrefix(out, caddyModule)
	version, _, _ = strings.Cut(version, "=>")
	return strings.TrimSpace(version), nil
}

// goList runs `go list -m args...` in dir and returns its output, trimmed.
func goList(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", append([]string{"list", "-m"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", strings.Join(args, " "), err)
	}
	return string(bytes.TrimSpace(out)), nil
}

// windowsResource is xcaddy v0.4.5's WindowsResource, with the icon's path and
// the architecture given instead of taken from its module and environment.
func windowsResource(version, outputFile, tempDir, icon, arch string) error {
	vi := &goversioninfo.VersionInfo{}

	// FixedFileInfo
	vi.FixedFileInfo.FileOS = "040004" // VOS_NT_WINDOWS32
	vi.FixedFileInfo.FileType = "01"   // VFT_APP

	semanticVersion, err := semver.NewVersion(version)
	if err != nil {
		return err
	}

	basename := filepath.Base(outputFile)
	ext := filepath.Ext(basename)

	// FixedFileInfo.FileVersion
	vi.FixedFileInfo.FileVersion.Major = int(semanticVersion.Major())
	vi.FixedFileInfo.FileVersion.Minor = int(semanticVersion.Minor())
	vi.FixedFileInfo.FileVersion.Patch = int(semanticVersion.Patch())
	vi.FixedFileInfo.FileVersion.Build = 0
	// FixedFileInfo.ProductVersion
	vi.FixedFileInfo.ProductVersion.Major = int(semanticVersion.Major())
	vi.FixedFileInfo.ProductVersion.Minor = int(semanticVersion.Minor())
	vi.FixedFileInfo.ProductVersion.Patch = int(semanticVersion.Patch())
	vi.FixedFileInfo.ProductVersion.Build = 0

	// StringFileInfo
	vi.StringFileInfo.CompanyName = "https://caddyserver.com/"
	vi.StringFileInfo.ProductName = "Caddy"
	vi.StringFileInfo.FileDescription = "Caddy"
	vi.StringFileInfo.InternalName = strings.TrimSuffix(basename, ext)
	vi.StringFileInfo.OriginalFilename = basename
	vi.StringFileInfo.LegalCopyright = "The Caddy Authors"
	vi.StringFileInfo.FileVersion = semanticVersion.String()
	vi.StringFileInfo.ProductVersion = semanticVersion.String()

	// xcaddy copies its embedded icon into the build's folder first; the copy is read from there.
	ico, err := os.ReadFile(icon)
	if err != nil {
		return err
	}
	icoCopy := filepath.Join(tempDir, "caddy.ico")
	if err := os.WriteFile(icoCopy, ico, 0o644); err != nil {
		return err
	}
	defer os.Remove(icoCopy)
	vi.IconPath = icoCopy

	// Build native structures from the configuration data
	vi.Build()

	// Write the native structures as binary data to a buffer
	vi.Walk()

	// Write the binary data buffer to file
	return vi.WriteSyso(filepath.Join(tempDir, fmt.Sprintf("resource_windows_%s.syso", arch)), arch)
}
