package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/history"
)

// backup writes a consistent copy of the history to a file. While hearth
// runs it asks the running server (GET /api/backup, as an admin, with a
// short-lived token it makes from the token secret); otherwise it reads
// the file itself. The copy is checked before it takes the output's name.
// The photos the copy knows of are then copied from data_dir/attachments
// into the directory FILE.attachments beside it, each only if it is not
// there yet (files are named by their content and never change), so a
// backup taken again copies only the new ones.
func backup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", stderr)
	configPath := fs.String("config", "config.yaml", "configuration file")
	out := fs.String("o", "", "file to write the copy to")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-o is required")
	}
	cfg, err := hearth.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	part := *out + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(part)
	how, err := backupFromServer(ctx, cfg, f)
	if errors.Is(err, syscall.ECONNREFUSED) {
		how, err = backupFromFile(cfg, f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	s, err := history.Open(part)
	if err != nil {
		return fmt.Errorf("backup: the copy does not open: %w", err)
	}
	err = s.Check()
	var ids []string
	if err == nil {
		ids, err = s.AttachmentIDs()
	}
	s.Close()
	if err != nil {
		return fmt.Errorf("backup: the copy is damaged: %w", err)
	}
	if err := os.Rename(part, *out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "history copied to %s (%s)\n", *out, how)
	if len(ids) == 0 {
		return nil
	}
	dir := *out + ".attachments"
	copied, missing, err := backupAttachments(filepath.Join(cfg.DataDir, "attachments"), dir, ids)
	if err != nil {
		return fmt.Errorf("backup of photos: %w", err)
	}
	fmt.Fprintf(stdout, "photos copied to %s (%d new, %d already there", dir, copied, len(ids)-copied-missing)
	if missing > 0 {
		fmt.Fprintf(stdout, ", %d deleted meanwhile", missing)
	}
	fmt.Fprintln(stdout, ")")
	return nil
}

// backupAttachments copies the files (and thumbnails) of ids from src to
// dst, laid out alike, skipping those dst has. A photo whose file is gone
// from src (swept since the history was copied) is counted as missing.
func backupAttachments(src, dst string, ids []string) (copied, missing int, err error) {
	for _, id := range ids {
		if !hearth.ValidAttachmentID(id) {
			continue
		}
		fresh := false
		for _, name := range []string{id, id + "-thumb"} {
			rel := filepath.Join(id[:2], name)
			if _, err := os.Stat(filepath.Join(dst, rel)); err == nil {
				continue
			}
			n, err := copyFile(filepath.Join(src, rel), filepath.Join(dst, rel))
			if errors.Is(err, os.ErrNotExist) && name == id {
				missing++
				break
			}
			if err != nil {
				return copied, missing, err
			}
			fresh = fresh || (n > 0 && name == id)
		}
		if fresh {
			copied++
		}
	}
	return copied, missing, nil
}

// copyFile copies src to dst through a temporary file and a rename.
func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".part-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, in)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return n, os.Rename(tmp.Name(), dst)
}

func backupFromServer(ctx context.Context, cfg hearth.Config, w io.Writer) (string, error) {
	var admin string
	for _, u := range cfg.Users {
		if u.Role == hearth.RoleAdmin {
			admin = u.Name
			break
		}
	}
	if admin == "" {
		return "", errors.New("a backup from the running server needs an admin user in the config")
	}
	auth, err := newAuthenticator(cfg)
	if err != nil {
		return "", err
	}
	tok, _, err := auth.Issue(admin, 5*time.Minute)
	if err != nil {
		return "", err
	}
	scheme, client := "http", http.DefaultClient
	if cfg.HTTP.TLS.CertFile != "" {
		if scheme, client, err = pinnedClient(cfg.HTTP.TLS); err != nil {
			return "", err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+dialable(cfg.HTTP.Addr)+"/api/backup", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return "", fmt.Errorf("server answered %s: %s", resp.Status, b)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return "", err
	}
	return "from the running server", nil
}

// pinnedClient talks HTTPS to hearth's own listener: it is dialled by
// its address, which the certificate (made for the public name) need not
// name, so the client accepts exactly the certificate in cert_file.
func pinnedClient(f hearth.CertFiles) (string, *http.Client, error) {
	cert, err := loadCertificate("http.tls", f)
	if err != nil {
		return "", nil, err
	}
	want := cert.Certificate[0]
	tc := &tls.Config{
		InsecureSkipVerify: true, // VerifyConnection checks instead
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return errors.New("the server's certificate is not the one in http.tls.cert_file (was it renewed without restarting hearth?)")
			}
			return nil
		},
	}
	return "https", &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}, nil
}

func backupFromFile(cfg hearth.Config, w io.Writer) (string, error) {
	path := filepath.Join(cfg.DataDir, "history.db")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("hearth is not running, and there is no history to copy: %w", err)
	}
	s, err := history.Open(path)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if _, err := s.WriteTo(w); err != nil {
		return "", err
	}
	return "hearth was not running", nil
}

// dialable turns a listen address into one to connect to (and to show
// in a browser's address bar).
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
