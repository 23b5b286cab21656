// fgi serve's page: open a photo, paint the hole on a mask canvas of the photo's own size,
// send the photo file as it is and the mask as a PNG (white = hole), show every result.
"use strict";

const $ = (id) => document.getElementById(id);
const photoCanvas = $("photo"), maskCanvas = $("mask");
const photoContext = photoCanvas.getContext("2d"), maskContext = maskCanvas.getContext("2d");
const UNDO_DEPTH = 30;
let photoData = null;  // the photo file as a data URL, sent unchanged
let history = [];      // mask snapshots before each edit
let painting = false, last = null;

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the browser cannot decode this file"));
    image.src = url;
  });
}

async function openPhoto(file) {
  if (!file) return;
  try {
    const url = await readAsDataURL(file);
    const image = await loadImage(url);
    photoData = url;
    for (const canvas of [photoCanvas, maskCanvas]) {
      canvas.width = image.naturalWidth;
      canvas.height = image.naturalHeight;
    }
    photoContext.drawImage(image, 0, 0);
    maskContext.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
    history = [];
    $("stage").hidden = false;
    $("drop-hint").hidden = true;
    $("run").disabled = false;
    status(`${file.name}: ${image.naturalWidth}×${image.naturalHeight}. Paint over what to remove.`);
  } catch (error) {
    status(`${file.name}: ${error.message}; open a JPEG or PNG`, true);
  }
}

function snapshot() {
  history.push(maskContext.getImageData(0, 0, maskCanvas.width, maskCanvas.height));
  if (history.length > UNDO_DEPTH) history.shift();
}

function canvasPoint(event) {
  const box = maskCanvas.getBoundingClientRect();
  return {x: (event.clientX - box.left) * maskCanvas.width / box.width,
          y: (event.clientY - box.top) * maskCanvas.height / box.height,
          scale: maskCanvas.width / box.width};
}

function stroke(from, to) {
  maskContext.globalCompositeOperation = $("erase").checked ? "destination-out" : "source-over";
  maskContext.strokeStyle = "rgb(255, 0, 0)";
  maskContext.lineCap = maskContext.lineJoin = "round";
  maskContext.lineWidth = Number($("brush").value) * to.scale;  // brush size in screen pixels
  maskContext.beginPath();
  maskContext.moveTo(from.x, from.y);
  maskContext.lineTo(to.x + 0.01, to.y);
  maskContext.stroke();
}

maskCanvas.addEventListener("pointerdown", (event) => {
  if (!photoData) return;
  snapshot();
  painting = true;
  last = canvasPoint(event);
  stroke(last, last);
  maskCanvas.setPointerCapture(event.pointerId);
});
maskCanvas.addEventListener("pointermove", (event) => {
  if (!painting) return;
  const point = canvasPoint(event);
  stroke(last, point);
  last = point;
});
for (const end of ["pointerup", "pointercancel"]) {
  maskCanvas.addEventListener(end, () => { painting = false; });
}

$("brush").addEventListener("input", () => { $("brush-size").textContent = $("brush").value; });
$("undo").addEventListener("click", () => {
  const previous = history.pop();
  if (previous) maskContext.putImageData(previous, 0, 0);
});
$("clear").addEventListener("click", () => {
  snapshot();
  maskContext.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
});
$("photo-file").addEventListener("change", (event) => openPhoto(event.target.files[0]));

$("mask-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file || !photoData) { status("open a photo before its mask", true); return; }
  try {
    const image = await loadImage(await readAsDataURL(file));
    if (image.naturalWidth !== maskCanvas.width || image.naturalHeight !== maskCanvas.height) {
      status(`${file.name} is ${image.naturalWidth}×${image.naturalHeight} but the photo is ` +
             `${maskCanvas.width}×${maskCanvas.height}; upload a mask of the photo's size`, true);
      return;
    }
    // White (luminance >= 128) is the hole, as `fgi inpaint` reads a mask.
    const scratch = document.createElement("canvas");
    scratch.width = image.naturalWidth; scratch.height = image.naturalHeight;
    const scratchContext = scratch.getContext("2d");
    scratchContext.drawImage(image, 0, 0);
    const pixels = scratchContext.getImageData(0, 0, scratch.width, scratch.height);
    const painted = maskContext.createImageData(scratch.width, scratch.height);
    for (let i = 0; i < pixels.data.length; i += 4) {
      const luminance = 0.299 * pixels.data[i] + 0.587 * pixels.data[i + 1] + 0.114 * pixels.data[i + 2];
      if (luminance >= 128) { painted.data[i] = 255; painted.data[i + 3] = 255; }
    }
    snapshot();
    maskContext.putImageData(painted, 0, 0);
    status(`${file.name}: mask loaded; paint or erase to change it.`);
  } catch (error) {
    status(`${file.name}: ${error.message}`, true);
  }
});

const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  openPhoto(event.dataTransfer.files[0]);
});

function maskPNG() {
  // The painted alpha becomes the hole: white on black, the photo's size.
  const painted = maskContext.getImageData(0, 0, maskCanvas.width, maskCanvas.height);
  const out = document.createElement("canvas");
  out.width = maskCanvas.width; out.height = maskCanvas.height;
  const outContext = out.getContext("2d");
  const binary = outContext.createImageData(out.width, out.height);
  for (let i = 0; i < painted.data.length; i += 4) {
    const value = painted.data[i + 3] >= 128 ? 255 : 0;
    binary.data[i] = binary.data[i + 1] = binary.data[i + 2] = value;
    binary.data[i + 3] = 255;
  }
  outContext.putImageData(binary, 0, 0);
  return out.toDataURL("image/png");
}

async function loadMethods() {
  try {
    const response = await fetch("/api/methods");
    const listing = await response.json();
    for (const method of listing.methods) {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox"; box.value = method.name; box.checked = true; box.name = "method";
      label.append(box, " " + method.label);
      $("methods").append(label);
    }
    $("face-crop").checked = listing.face_crop;
  } catch (error) {
    status(`cannot list the methods: ${error.message}`, true);
  }
}

function card(result) {
  const element = document.createElement("div");
  element.className = "card";
  element.dataset.method = result.method;
  const title = document.createElement("h3");
  title.textContent = `${result.label} — ${result.seconds.toFixed(2)} s`;
  element.append(title);
  if (result.error) {
    const message = document.createElement("p");
    message.className = "error";
    message.textContent = result.error;
    element.append(message);
    return element;
  }
  const url = "data:image/png;base64," + result.png;
  const image = document.createElement("img");
  image.src = url; image.alt = result.label;
  const crop = document.createElement("p");
  crop.textContent = result.crop;
  const link = document.createElement("a");
  link.href = url; link.download = `fgi-${result.method}.png`; link.textContent = "Download PNG";
  element.append(image, crop, link);
  return element;
}

$("compare-slider").addEventListener("input", () => {
  $("compare-before").style.clipPath = `inset(0 ${100 - Number($("compare-slider").value)}% 0 0)`;
});

$("run").addEventListener("click", async () => {
  const methods = [...document.querySelectorAll("input[name=method]:checked")].map((box) => box.value);
  if (!methods.length) { status("pick at least one method", true); return; }
  $("run").disabled = true;
  status(`running ${methods.join(", ")} …`);
  try {
    const response = await fetch("/api/inpaint", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({image: photoData, mask: maskPNG(), methods, face_crop: $("face-crop").checked}),
    });
    const answer = await response.json();
    if (!response.ok) { status(answer.error || `the server answered ${response.status}`, true); return; }
    $("cards").replaceChildren(...answer.results.map(card));
    const first = answer.results.find((result) => !result.error);
    if (first) {
      $("compare-after").src = "data:image/png;base64," + first.png;
      $("compare-before").src = photoData;
      $("compare-slider").dispatchEvent(new Event("input"));
    }
    $("results").hidden = false;
    const failed = answer.results.filter((result) => result.error).length;
    status(`done: ${answer.results.length - failed} result(s)` + (failed ? `, ${failed} failed` : ""), failed > 0);
  } catch (error) {
    status(`the server did not answer: ${error.message}`, true);
  } finally {
    $("run").disabled = false;
  }
});

loadMethods();
