package ui

import (
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/labstack/echo/v5"
)

// ContentSecurityPolicy is the web app's CSP: only the app's own scripts
// and styles (no inline script or style anywhere), images only from the
// app itself and data: URLs, no plugins, no framing. Images from other
// sites are shown as links instead (see markdown), so a model's text
// cannot make the browser send anything elsewhere.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// remoteImagesCSP is ContentSecurityPolicy on pages that show messages
// when an admin has opted in to remote images: https images may load.
const remoteImagesCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// settingRemoteImages is the settings row of the remote-images opt-in.
const settingRemoteImages = "remote_images"

// remoteImages reports whether messages may load images from other sites
// (off unless an admin turned it on) and, when they may, widens this
// response's CSP to match.
func (u *UI) remoteImages(c *echo.Context) (bool, error) {
	v, err := u.store.Setting(c.Request().Context(), settingRemoteImages, "off")
	if err != nil {
		return false, respond.Internal(err)
	}
	if v != "on" {
		return false, nil
	}
	c.Response().Header().Set("Content-Security-Policy", remoteImagesCSP)
	return true, nil
}

// SetRemoteImages handles POST /settings/remote-images (admins): the
// explicit opt-in to load images from other sites in messages.
func (u *UI) SetRemoteImages(c *echo.Context) error {
	on := c.FormValue("remote_images") == "on"
	v, msg := "off", "Images from other sites are shown as links."
	if on {
		v, msg = "on", "Images from other sites now load in messages."
	}
	if err := u.store.SetSetting(c.Request().Context(), settingRemoteImages, v); err != nil {
		return respond.Internal(err)
	}
	u.cfg.Log.Info("remote images setting changed", "remote_images", v, "admin", currentUser(c).Email)
	return u.flash(c, "/settings/users", msg, false)
}
