// The live punches page (/ui/live): follows the server-sent event stream named by the table's
// data-stream attribute. Each `punches` message carries up to a few hundred rows (oldest first)
// at most four times a second; they are written as text (never markup) at the top of the
// table in one DOM insertion, and rows past data-max-rows are removed, so the page stays
// responsive at any ingest rate. No inline script: the console's CSP forbids it.
(function () {
  "use strict";
  var table = document.getElementById("live-punches");
  if (!table || typeof EventSource === "undefined") {
    return;
  }
  var body = table.tBodies[0];
  var status = document.getElementById("live-status");
  var notShownNote = document.getElementById("live-not-shown");
  var maxRows = parseInt(table.getAttribute("data-max-rows"), 10) || 500;
  var notShown = 0;
  var source = new EventSource(table.getAttribute("data-stream"));

  function say(text) {
    status.textContent = text;
  }

  function cell(row, text) {
    var td = row.insertCell(-1);
    td.textContent = text;
    return td;
  }

  function rowOf(punch) {
    var row = document.createElement("tr");
    row.setAttribute("data-punch", String(punch.id));
    cell(row, punch.received);
    var device = row.insertCell(-1);
    var link = document.createElement("a");
    link.href = punch.device_href;
    link.textContent = punch.sn;
    device.appendChild(link);
    if (punch.alias) {
      device.appendChild(document.createTextNode(" (" + punch.alias + ")"));
    }
    cell(row, punch.pin).className = "pin";
    cell(row, punch.name).className = "name";
    cell(row, punch.time);
    cell(row, punch.state);
    cell(row, punch.verify);
    return row;
  }

  source.addEventListener("ready", function () {
    say("Connected: punches appear as they are stored.");
  });

  source.addEventListener("punches", function (event) {
    var message = JSON.parse(event.data);
    var empty = document.getElementById("live-empty");
    if (empty && message.punches.length > 0) {
      empty.parentNode.removeChild(empty);
    }
    var fragment = document.createDocumentFragment();
    for (var i = message.punches.length - 1; i >= 0; i--) {
      fragment.appendChild(rowOf(message.punches[i]));
    }
    body.insertBefore(fragment, body.firstChild);
    while (body.rows.length > maxRows) {
      body.deleteRow(-1);
    }
    if (message.not_shown > 0) {
      notShown += message.not_shown;
      notShownNote.textContent = notShown + " punches arrived faster than this page shows them and are not listed here (they are stored: see Devices).";
      notShownNote.hidden = false;
    }
  });

  source.addEventListener("ended", function () {
    source.close();
    say("Your session ended: log in again to follow punches.");
  });

  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      say("The stream stopped (your session may have ended): reload the page.");
    } else {
      say("Reconnecting…");
    }
  });
})();
