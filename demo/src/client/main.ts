// The browser entry: esbuild bundles this into public/bundle.js when the server starts.
import './app.js';
