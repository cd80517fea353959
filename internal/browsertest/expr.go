package browsertest

import (
	"context"
	"fmt"
	"strings"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The JavaScript expressions tests wait for and check.

// And joins expressions with &&.
func And(exprs ...string) string {
	return "(" + strings.Join(exprs, ") && (") + ")"
}

// Or joins expressions with ||.
func Or(exprs ...string) string {
	return "(" + strings.Join(exprs, ") || (") + ")"
}

// TextIs: the first element matching sel has exactly the text want.
func TextIs(sel, want string) string {
	return fmt.Sprintf("document.querySelector(%q)?.textContent === %q", sel, want)
}

// TextHas: the first element matching sel contains the text part.
func TextHas(sel, part string) string {
	return fmt.Sprintf("document.querySelector(%q)?.textContent.includes(%q)", sel, part)
}

// Exists: an element matches sel.
func Exists(sel string) string {
	return fmt.Sprintf("!!document.querySelector(%q)", sel)
}

// Shown: an element matches sel and is not hidden.
func Shown(sel string) string {
	return fmt.Sprintf("document.querySelector(%q)?.hidden === false", sel)
}

// Focused: the element with this id has the focus.
func Focused(id string) string {
	return fmt.Sprintf("document.activeElement?.id === %q", id)
}

// Click clicks the first element matching a CSS selector.
func Click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel))
}

// PressKey presses a key the way a browser delivers it to a page that
// handles its keydown: chromedp's KeyEvent also sends the character
// event, which a real browser drops once keydown's default is prevented,
// and which would press the button that has the focus by then.
func PressKey(key string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range key {
			for _, k := range kb.Encode(r) {
				if k.Type == kb.KeyChar {
					continue
				}
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, *k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
