// The channels page's connect flows (decision 0046). Served from our origin; the page's
// policy lets Meta's SDK load from its configured origin, and nothing else from elsewhere.
//
// WhatsApp: Embedded Signup v4 through Meta's JavaScript SDK (WhatsApp Business Platform,
// "Embedded Signup > Implementation"): FB.init with the app id, FB.login with the Facebook
// Login for Business configuration id, response_type "code" and
// override_default_response_type, and the session-info `message` event of type
// WA_EMBEDDED_SIGNUP, accepted only from the configured Facebook origins: FINISH (or
// FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING for a number kept in the WhatsApp Business app)
// with data.waba_id and data.phone_number_id, CANCEL with data.current_step, ERROR (or a
// CANCEL carrying data.error_message, as user-reported errors arrive) with
// data.error_message. FB.login's callback brings the exchangeable code
// (response.authResponse.code). When both are in, the hidden form goes to our server with
// the page's anti-forgery token, and the server answers with the report of each step.
//
// The result page: the address bar loses the one-time code and state, so a reload does
// not send them again.
"use strict";
(function () {
  var result = document.getElementById("connect-result");
  if (result && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", result.getAttribute("data-replace-url"));
  }
  var root = document.getElementById("whatsapp-signup");
  if (!root) {
    return;
  }
  var origins = (root.getAttribute("data-origins") || "").split(" ").filter(function (o) {
    return o.length > 0;
  });
  var form = document.getElementById("signup-form");
  var status = document.getElementById("signup-status");
  var buttons = [
    document.getElementById("connect-whatsapp"),
    document.getElementById("connect-coexistence")
  ];
  var FINISH = ["FINISH", "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"];
  // One sign-up at a time: what the user started, the session info and the code so far.
  var pending = null;
  var session = null;
  var code = null;
  var loginReturned = false;
  var sent = false;
  var wait = null;
  var initialised = false;

  function say(attr) {
    status.textContent = attr ? root.getAttribute(attr) || "" : "";
  }

  function set(name, value) {
    form.elements[name].value = value ? String(value) : "";
  }

  function submit(event, data) {
    if (sent) {
      return;
    }
    sent = true;
    if (wait) {
      window.clearTimeout(wait);
    }
    var finish = FINISH.indexOf(event) >= 0;
    set("event", event);
    set("code", finish ? code : "");
    set("waba_id", finish ? data.waba_id : "");
    set("phone_number_id", finish ? data.phone_number_id : "");
    set("pin", event === "FINISH" ? pending.pin : "");
    set("current_step", event === "CANCEL" ? data.current_step : "");
    set("error_message", event === "ERROR" ? data.error_message : "");
    form.submit();
  }

  // Called on each arrival (the message, the login callback): acts once it knows enough.
  function settle() {
    if (sent || !pending) {
      return;
    }
    if (session) {
      var data = session.data || {};
      if (FINISH.indexOf(session.event) >= 0) {
        // The code comes with the login callback; without one the server says what is
        // missing.
        if (code || loginReturned) {
          submit(session.event, data);
        }
      } else if (session.event === "CANCEL" && data.error_message) {
        submit("ERROR", data);
      } else {
        // CANCEL, ERROR, and events we do not connect (FINISH_ONLY_WABA): the server
        // answers each in words.
        submit(String(session.event), data);
      }
      return;
    }
    if (loginReturned && !wait) {
      // The window closed; its session info may still be on its way.
      wait = window.setTimeout(function () {
        wait = null;
        if (sent || session) {
          return;
        }
        if (code) {
          // A code without the number it is for: nothing can be connected.
          pending = null;
          say("data-no-session");
        } else {
          submit("CANCEL", {});
        }
      }, 3000);
    }
  }

  function launch(button) {
    if (pending && !sent) {
      return;
    }
    var featureType = button.getAttribute("data-feature-type") || "";
    var pin = document.getElementById("pin");
    pending = { pin: featureType || !pin ? "" : pin.value.trim() };
    session = null;
    code = null;
    loginReturned = false;
    sent = false;
    say("data-waiting");
    window.FB.login(
      function (response) {
        loginReturned = true;
        code = (response && response.authResponse && response.authResponse.code) || null;
        settle();
      },
      {
        config_id: root.getAttribute("data-config-id"),
        response_type: "code",
        override_default_response_type: true,
        extras: {
          setup: {},
          featureType: featureType,
          sessionInfoVersion: "3",
          version: "v4"
        }
      }
    );
  }

  window.addEventListener("message", function (event) {
    // Only Facebook's popup speaks for the sign-up: a message from any other origin
    // (another window, a script of another site) is ignored.
    if (origins.indexOf(event.origin) < 0 || !pending) {
      return;
    }
    var data = event.data;
    if (typeof data === "string") {
      try {
        data = JSON.parse(data);
      } catch (e) {
        return;
      }
    }
    if (!data || data.type !== "WA_EMBEDDED_SIGNUP") {
      return;
    }
    session = data;
    settle();
  });

  function ready() {
    if (initialised) {
      return;
    }
    initialised = true;
    window.FB.init({
      appId: root.getAttribute("data-app-id"),
      // No analytics events, no social plugins, no cookie of Meta's on our origin: the
      // SDK is here for the sign-up window only.
      autoLogAppEvents: false,
      xfbml: false,
      cookie: false,
      version: root.getAttribute("data-version")
    });
    buttons.forEach(function (b) {
      if (b) {
        b.disabled = false;
        b.addEventListener("click", function () {
          launch(b);
        });
      }
    });
  }

  if (window.FB) {
    ready();
  } else {
    // Meta's SDK calls this once it has loaded.
    window.fbAsyncInit = ready;
    window.setTimeout(function () {
      if (!initialised) {
        say("data-unavailable");
      }
    }, 15000);
  }
})();
