"use strict";
// The playground: small networks trained in the server, every weight visible.
function openPlayground() {}
