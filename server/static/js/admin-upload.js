// The admin's upload panel: drop (or pick) one or many files, give each a title, and send them
// with tus-js-client to /api/v1/uploads/tus, each with its own progress. tus-js-client keeps
// each upload's URL in localStorage (its fingerprint), so a failed request is retried, an
// upload cut by the browser going offline goes on when it is back online, and a page reload
// picks the same file up where it stopped: the server answers the offset.
import { accessToken } from './api.js';
import { h } from './dom.js';

const ENDPOINT = '/api/v1/uploads/tus';
const CHUNK = 16 * 1024 * 1024;
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000];

let tusLoaded = null;
function loadTus() {
  // a UMD bundle served from our own origin (the CSP allows 'self' scripts only)
  tusLoaded ||= new Promise((resolve, reject) => {
    const s = h('script', { src: '/vendor/tus.min.js' });
    s.addEventListener('load', () => resolve(window.tus));
    s.addEventListener('error', () => reject(new Error('the upload library did not load')));
    document.head.append(s);
  });
  return tusLoaded;
}

function titleFromName(name) {
  return name.replace(/\.[^.]+$/, '').replace(/[._]+/g, ' ').trim() || name;
}

function fileRow(file, onDone) {
  const title = h('input', { type: 'text', value: titleFromName(file.name), 'aria-label': `Title for ${file.name}`, required: true, maxlength: '500' });
  const year = h('input', { type: 'number', min: '1870', max: '2200', placeholder: 'Year', 'aria-label': `Year for ${file.name}` });
  const bar = h('progress', { max: '100', value: '0', 'aria-label': `Upload progress of ${file.name}` });
  const state = h('span', { class: 'upload-state', role: 'status' }, 'Ready');
  const start = h('button', { type: 'button', class: 'btn' }, 'Upload');
  const cancel = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true }, 'Pause');
  const row = h('li', { class: 'upload-row', dataset: { file: file.name } },
    h('span', { class: 'upload-name' }, file.name), title, year, bar, state, start, cancel);
  let upload = null;

  async function go() {
    if (!title.value.trim()) {
      state.textContent = 'A title is needed';
      title.focus();
      return;
    }
    start.disabled = true;
    title.disabled = true;
    year.disabled = true;
    state.textContent = 'Starting…';
    let tus;
    try {
      tus = await loadTus();
    } catch (err) {
      state.textContent = err.message;
      start.disabled = false;
      return;
    }
    const metadata = { filename: file.name, filetype: file.type || 'application/octet-stream', title: title.value.trim() };
    if (year.value) metadata.year = year.value;
    upload = new tus.Upload(file, {
      endpoint: ENDPOINT,
      chunkSize: CHUNK,
      retryDelays: RETRY_DELAYS,
      metadata,
      removeFingerprintOnSuccess: true,
      async onBeforeRequest(req) {
        const token = await accessToken();
        if (token) req.setHeader('Authorization', `Bearer ${token}`);
      },
      onProgress(sent, total) {
        const pct = total ? Math.floor((sent / total) * 100) : 0;
        bar.value = pct;
        state.textContent = `${pct}% sent`;
      },
      onError(err) {
        if (!navigator.onLine) {
          // tus-js-client does not retry while the browser is offline: go on when it is back
          state.textContent = 'Waiting for the network…';
          row.dataset.state = 'waiting';
          window.addEventListener('online', () => {
            state.textContent = 'Resuming…';
            row.dataset.state = 'sending';
            upload.start();
          }, { once: true });
          return;
        }
        const status = err?.originalResponse?.getStatus?.();
        state.textContent = `Failed${status ? ` (${status})` : ''}: ${err.message.split('\n')[0]}`;
        row.dataset.state = 'error';
        start.disabled = false;
        start.textContent = 'Retry';
        cancel.hidden = true;
      },
      onSuccess() {
        bar.value = 100;
        state.textContent = 'Uploaded: transcoding queued';
        row.dataset.state = 'done';
        cancel.hidden = true;
        onDone();
      },
    });
    // an earlier try of this file (a reload, a drop): go on from the server's offset
    const previous = await upload.findPreviousUploads();
    if (previous.length) {
      upload.resumeFromPreviousUpload(previous[0]);
      state.textContent = 'Resuming…';
    }
    cancel.hidden = false;
    row.dataset.state = 'sending';
    upload.start();
  }

  start.addEventListener('click', go);
  cancel.addEventListener('click', () => {
    if (!upload) return;
    upload.abort();
    state.textContent = 'Paused';
    start.disabled = false;
    start.textContent = 'Resume';
    cancel.hidden = true;
  });
  return row;
}

/** The panel; `onDone` runs when an upload completes (the titles table refreshes). */
export function uploadPanel(onDone) {
  const list = h('ul', { class: 'upload-list', id: 'upload-list', 'aria-label': 'Files to upload' });
  const input = h('input', { type: 'file', multiple: true, accept: 'video/*,audio/*,.mkv,.ts,.mxf', id: 'upload-input', class: 'visually-hidden' });
  const zone = h('div', { class: 'drop-zone', id: 'drop-zone', tabindex: '0', role: 'button', 'aria-describedby': 'drop-hint' },
    h('p', { id: 'drop-hint' }, 'Drop video files here, or press Enter to choose them.'));
  function add(files) {
    for (const file of files) list.append(fileRow(file, onDone));
  }
  input.addEventListener('change', () => {
    add(input.files);
    input.value = '';
  });
  zone.addEventListener('click', () => input.click());
  zone.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      input.click();
    }
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('drag-over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('drag-over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('drag-over');
    add(e.dataTransfer.files);
  });
  return h('section', { class: 'admin-section', 'aria-labelledby': 'upload-heading' },
    h('h2', { id: 'upload-heading' }, 'Upload'), zone, input, list);
}
