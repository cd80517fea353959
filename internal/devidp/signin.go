package devidp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// SignIn signs in the way a person does, for tests, the benchmark and
// scripts: c (which needs a cookie jar) opens start, a URL that leads to
// this provider's login form (for example the proxy's login route), and
// submits the form with username and password. It returns the response at
// the end of the redirects, with its body read and closed, and the body.
func SignIn(
	ctx context.Context,
	c *http.Client,
	start, username, password string,
) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start, nil)
	if err != nil {
		return nil, "", fmt.Errorf("signing in: %w", err)
	}
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("signing in: opening %s: %w", start, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	form := resp.Request.URL
	id := form.Query().Get("authRequestID")
	if resp.StatusCode != http.StatusOK || id == "" {
		return nil, "", fmt.Errorf("signing in: got status %d at %s, want the login form",
			resp.StatusCode, form.Redacted())
	}

	// submitting it comes back through the client's callback
	body := url.Values{
		"id":       {id},
		"username": {username},
		"password": {password},
		"action":   {"login"},
	}.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, form.String(),
		strings.NewReader(body))
	if err != nil {
		return nil, "", fmt.Errorf("signing in: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	resp, err = c.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("signing in: submitting the form: %w", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, "", fmt.Errorf("signing in: reading the answer: %w", err)
	}
	return resp, string(b), nil
}
