"""The operator console: static files (index.html, console.js, console.css) served by ocpp_gw.admin."""
