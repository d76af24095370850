/**
 * The 3D scene (three.js inside a Lit component): the floor, the replicated objects and avatars (head, hands,
 * body, name), a third-person camera on desktop (WASD, drag to look, wheel to zoom) and a WebXR immersive-vr
 * session where the browser offers one (then the head and controllers are the avatar's pose and the thumbstick
 * walks).
 */
import { css, html, LitElement } from 'lit';
import * as THREE from 'three';
import { ARENA, PALETTE, type Pose, type Quat, type Vec3 } from '../shared/protocol.js';
import type { DemoClient, RenderEntity } from './net.js';

interface AvatarMeshes {
  group: THREE.Group;
  torso: THREE.Mesh;
  head: THREE.Group;
  left: THREE.Mesh;
  right: THREE.Mesh;
  label: THREE.Sprite;
  ring: THREE.Mesh;
}

interface EntityView {
  kind: RenderEntity['kind'];
  object: THREE.Object3D;
  shadow: THREE.Mesh;
  avatar?: AvatarMeshes;
}

const KEYS: Record<string, [number, number]> = {
  KeyW: [1, 0],
  ArrowUp: [1, 0],
  KeyS: [-1, 0],
  ArrowDown: [-1, 0],
  KeyA: [0, -1],
  ArrowLeft: [0, -1],
  KeyD: [0, 1],
  ArrowRight: [0, 1],
};

function labelSprite(text: string, color: number): THREE.Sprite {
  const canvas = document.createElement('canvas');
  canvas.width = 256;
  canvas.height = 64;
  const g = canvas.getContext('2d')!;
  g.font = '600 30px system-ui, sans-serif';
  const w = Math.min(248, g.measureText(text).width + 28);
  g.fillStyle = 'rgba(10,14,22,0.72)';
  g.beginPath();
  g.roundRect((256 - w) / 2, 10, w, 44, 22);
  g.fill();
  g.fillStyle = `#${color.toString(16).padStart(6, '0')}`;
  g.textAlign = 'center';
  g.textBaseline = 'middle';
  g.fillText(text, 128, 33);
  const tex = new THREE.CanvasTexture(canvas);
  tex.colorSpace = THREE.SRGBColorSpace;
  const sprite = new THREE.Sprite(
    new THREE.SpriteMaterial({ map: tex, depthWrite: false, transparent: true }),
  );
  sprite.scale.set(1.0, 0.25, 1);
  return sprite;
}

function ballTexture(color: number): THREE.Texture {
  const canvas = document.createElement('canvas');
  canvas.width = 128;
  canvas.height = 64;
  const g = canvas.getContext('2d')!;
  g.fillStyle = `#${color.toString(16).padStart(6, '0')}`;
  g.fillRect(0, 0, 128, 64);
  g.fillStyle = 'rgba(255,255,255,0.85)';
  g.fillRect(0, 26, 128, 12);
  g.fillStyle = 'rgba(0,0,0,0.18)';
  for (let i = 0; i < 4; i++) g.fillRect(i * 32 + 12, 0, 6, 64);
  const tex = new THREE.CanvasTexture(canvas);
  tex.colorSpace = THREE.SRGBColorSpace;
  return tex;
}

const setPos = (o: THREE.Object3D, v: Vec3) => o.position.set(v.x, v.y, v.z);
const setRot = (o: THREE.Object3D, q: Quat) => o.quaternion.set(q.x, q.y, q.z, q.w);

export class DemoScene extends LitElement {
  static override properties = {
    client: { attribute: false },
    xrSupported: { state: true },
    webglError: { state: true },
  };
  static override styles = css`
    :host {
      position: absolute;
      inset: 0;
      display: block;
    }
    canvas {
      width: 100%;
      height: 100%;
      display: block;
      touch-action: none;
      cursor: grab;
    }
    button {
      position: absolute;
      bottom: 16px;
      right: 16px;
      padding: 10px 16px;
      border-radius: 8px;
      border: 1px solid #5ec8ff;
      background: rgba(12, 16, 26, 0.8);
      color: #e6ecf5;
      font: 600 13px system-ui, sans-serif;
      cursor: pointer;
    }
    .help {
      position: absolute;
      bottom: 14px;
      left: 14px;
      color: #c9d3e3;
      background: rgba(12, 16, 26, 0.6);
      padding: 6px 10px;
      border-radius: 8px;
      font: 12px system-ui, sans-serif;
    }
    .error {
      position: absolute;
      inset: 40% 20% auto;
      text-align: center;
      color: #ff6b8b;
      font: 14px system-ui, sans-serif;
    }
  `;
  declare client: DemoClient;
  declare xrSupported: boolean;
  declare webglError: string;
  /** Frames rendered (the test reads it to know the scene runs). */
  framesRendered = 0;
  #renderer: THREE.WebGLRenderer | undefined;
  #scene = new THREE.Scene();
  #camera = new THREE.PerspectiveCamera(50, 1, 0.05, 200);
  #rig = new THREE.Group();
  #views = new Map<number, EntityView>();
  #keys = new Set<string>();
  #distance = 8.5;
  #drag: { x: number; y: number; id: number } | undefined;
  #lastFrame = 0;
  /** Render scale: lowered while frames are slow (software GL, a weak GPU), raised again when they are fast. */
  #scale = 1;
  /** `?scale=0.5` fixes the render scale (no adaptation). */
  #fixedScale = (() => {
    const v = Number(new URLSearchParams(location.search).get('scale'));
    return v >= 0.25 && v <= 2 ? v : undefined;
  })();
  #slowCheck = { at: 0, frames: 0 };
  #resize: ResizeObserver | undefined;
  #grips: THREE.Group[] = [];
  #cleanup: (() => void)[] = [];

  constructor() {
    super();
    this.xrSupported = false;
    this.webglError = '';
  }

  protected override render() {
    return html`<canvas></canvas>
      <div class="help">WASD / arrows: walk · drag: look · wheel: zoom</div>
      ${this.xrSupported ? html`<button id="xr" @click=${() => void this.#enterXR()}>Enter VR</button>` : ''}
      ${this.webglError ? html`<div class="error">3D view unavailable: ${this.webglError}</div>` : ''}`;
  }

  protected override firstUpdated(): void {
    const canvas = this.renderRoot.querySelector('canvas')!;
    // three.js needs WebGL 2; asking a scratch canvas first avoids its console errors where there is none (e.g.
    // headless Firefox without a GPU). The network side keeps running without a view.
    const probe = document.createElement('canvas').getContext('webgl2');
    try {
      if (!probe) throw new Error('this browser offers no WebGL 2 context');
      probe.getExtension('WEBGL_lose_context')?.loseContext();
      this.#renderer = new THREE.WebGLRenderer({ canvas, antialias: this.#pixelRatio() >= 1.5 });
    } catch (err) {
      this.webglError = (err as Error).message;
      const tick = (t: number) => {
        if (!this.isConnected) return;
        this.client.frame(performance.now(), this.#lastFrame ? t - this.#lastFrame : 16);
        this.#lastFrame = t;
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
      return;
    }
    const r = this.#renderer;
    r.setPixelRatio(this.#pixelRatio());
    r.outputColorSpace = THREE.SRGBColorSpace;
    this.#buildStage();
    this.#rig.add(this.#camera);
    this.#scene.add(this.#rig);
    this.#resize = new ResizeObserver(() => this.#fit());
    this.#resize.observe(this);
    this.#fit();
    this.#bindInput(canvas);
    r.setAnimationLoop((t, frame) => this.#frame(t, frame));
    void navigator.xr?.isSessionSupported('immersive-vr').then(
      (ok) => (this.xrSupported = ok),
      () => {},
    );
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.#renderer?.setAnimationLoop(null);
    this.#resize?.disconnect();
    for (const f of this.#cleanup) f();
    this.#renderer?.dispose();
  }

  #pixelRatio(): number {
    return Math.min(2, devicePixelRatio || 1) * (this.#fixedScale ?? this.#scale);
  }

  #adaptResolution(t: number): void {
    const c = this.#slowCheck;
    if (this.#fixedScale !== undefined) return;
    c.frames++;
    if (c.at === 0) c.at = t;
    if (t - c.at < 1000) return;
    const fps = (c.frames * 1000) / (t - c.at);
    c.at = t;
    c.frames = 0;
    const before = this.#scale;
    if (fps < 24 && this.#scale > 0.4) this.#scale = Math.max(0.4, this.#scale * 0.75);
    else if (fps > 50 && this.#scale < 1) this.#scale = Math.min(1, this.#scale / 0.75);
    if (before !== this.#scale && !this.#renderer?.xr.isPresenting) {
      this.#renderer?.setPixelRatio(this.#pixelRatio());
      this.#fit();
    }
  }

  #fit(): void {
    const w = Math.max(1, this.clientWidth);
    const h = Math.max(1, this.clientHeight);
    this.#renderer?.setSize(w, h, false);
    this.#camera.aspect = w / h;
    this.#camera.updateProjectionMatrix();
  }

  #buildStage(): void {
    const s = this.#scene;
    s.background = new THREE.Color(0x141a28);
    s.fog = new THREE.Fog(0x141a28, 18, 45);
    s.add(new THREE.HemisphereLight(0xbfd8ff, 0x2a2438, 1.6));
    const sun = new THREE.DirectionalLight(0xffffff, 1.8);
    sun.position.set(6, 12, 4);
    s.add(sun);
    const floor = new THREE.Mesh(
      new THREE.PlaneGeometry(ARENA * 2, ARENA * 2),
      new THREE.MeshLambertMaterial({ color: 0x263047 }),
    );
    floor.rotation.x = -Math.PI / 2;
    s.add(floor);
    const grid = new THREE.GridHelper(ARENA * 2, ARENA * 2, 0x4b5a7a, 0x34405a);
    grid.position.y = 0.002;
    s.add(grid);
    const ground = new THREE.Mesh(
      new THREE.CircleGeometry(60, 48),
      new THREE.MeshBasicMaterial({ color: 0x10151f }),
    );
    ground.rotation.x = -Math.PI / 2;
    ground.position.y = -0.01;
    s.add(ground);
    const wallMat = new THREE.MeshLambertMaterial({ color: 0x5ec8ff, transparent: true, opacity: 0.35 });
    for (const [x, z, w, d] of [
      [0, -ARENA, ARENA * 2, 0.1],
      [0, ARENA, ARENA * 2, 0.1],
      [-ARENA, 0, 0.1, ARENA * 2],
      [ARENA, 0, 0.1, ARENA * 2],
    ]) {
      const wall = new THREE.Mesh(new THREE.BoxGeometry(w, 0.3, d), wallMat);
      wall.position.set(x, 0.15, z);
      s.add(wall);
    }
  }

  #bindInput(canvas: HTMLCanvasElement): void {
    const down = (e: KeyboardEvent) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
      if (KEYS[e.code]) {
        this.#keys.add(e.code);
        e.preventDefault();
      }
    };
    const up = (e: KeyboardEvent) => this.#keys.delete(e.code);
    const blur = () => this.#keys.clear();
    addEventListener('keydown', down);
    addEventListener('keyup', up);
    addEventListener('blur', blur);
    this.#cleanup.push(() => {
      removeEventListener('keydown', down);
      removeEventListener('keyup', up);
      removeEventListener('blur', blur);
    });
    canvas.addEventListener('pointerdown', (e) => {
      this.#drag = { x: e.clientX, y: e.clientY, id: e.pointerId };
      canvas.setPointerCapture(e.pointerId);
      canvas.style.cursor = 'grabbing';
    });
    canvas.addEventListener('pointermove', (e) => {
      if (!this.#drag || e.pointerId !== this.#drag.id) return;
      const c = this.client.controls;
      c.yaw -= (e.clientX - this.#drag.x) * 0.005;
      c.pitch = Math.max(-1.2, Math.min(0.5, c.pitch - (e.clientY - this.#drag.y) * 0.004));
      this.#drag.x = e.clientX;
      this.#drag.y = e.clientY;
    });
    const end = () => {
      this.#drag = undefined;
      canvas.style.cursor = 'grab';
    };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
    canvas.addEventListener(
      'wheel',
      (e) => {
        this.#distance = Math.max(2, Math.min(20, this.#distance * (1 + Math.sign(e.deltaY) * 0.1)));
        e.preventDefault();
      },
      { passive: false },
    );
  }

  async #enterXR(): Promise<void> {
    const r = this.#renderer;
    if (!r || !navigator.xr) return;
    const session = await navigator.xr.requestSession('immersive-vr', { optionalFeatures: ['local-floor'] });
    r.xr.enabled = true;
    r.xr.setReferenceSpaceType('local-floor');
    for (let i = 0; i < 2; i++) {
      const grip = r.xr.getControllerGrip(i);
      this.#rig.add(grip);
      this.#grips[i] = grip;
    }
    await r.xr.setSession(session);
    session.addEventListener('end', () => {
      this.client.xr = undefined;
      r.xr.enabled = false;
      this.#camera.position.set(0, 0, 0);
      this.#camera.quaternion.identity();
    });
  }

  /** In XR: the tracked head and controllers become the avatar's pose, the left thumbstick walks. */
  #readXR(frame: XRFrame | undefined): void {
    const r = this.#renderer;
    if (!r?.xr.isPresenting || !frame) return;
    const cam = r.xr.getCamera();
    const rel = (o: THREE.Object3D): { p: Vec3; q: Quat } => {
      const p = new THREE.Vector3();
      const q = new THREE.Quaternion();
      o.getWorldPosition(p);
      o.getWorldQuaternion(q);
      return {
        p: { x: p.x - this.#rig.position.x, y: p.y, z: p.z - this.#rig.position.z },
        q: { x: q.x, y: q.y, z: q.z, w: q.w },
      };
    };
    const head = rel(cam);
    const l = this.#grips[0] ? rel(this.#grips[0]) : head;
    const rr = this.#grips[1] ? rel(this.#grips[1]) : head;
    const pose: Pose = {
      head: head.p,
      headRot: head.q,
      left: l.p,
      leftRot: l.q,
      right: rr.p,
      rightRot: rr.q,
    };
    const yaw = new THREE.Euler().setFromQuaternion(
      new THREE.Quaternion(head.q.x, head.q.y, head.q.z, head.q.w),
      'YXZ',
    ).y;
    let ax = 0;
    let ay = 0;
    for (const src of frame.session.inputSources) {
      const axes = src.gamepad?.axes;
      if (axes && axes.length >= 4 && Math.hypot(axes[2], axes[3]) > Math.hypot(ax, ay)) {
        ax = axes[2];
        ay = axes[3];
      }
    }
    const forward = -ay;
    const right = ax;
    this.client.controls.yaw = yaw;
    this.client.xr = {
      pose,
      moveX: -Math.sin(yaw) * forward + Math.cos(yaw) * right,
      moveZ: -Math.cos(yaw) * forward - Math.sin(yaw) * right,
    };
  }

  #frame(t: number, frame?: XRFrame): void {
    const r = this.#renderer;
    if (!r || !this.client) return;
    const dt = this.#lastFrame ? Math.min(100, t - this.#lastFrame) : 16;
    this.#lastFrame = t;
    const c = this.client;
    let f = 0;
    let s = 0;
    for (const k of this.#keys) {
      f += KEYS[k][0];
      s += KEYS[k][1];
    }
    c.controls.forward = Math.max(-1, Math.min(1, f));
    c.controls.right = Math.max(-1, Math.min(1, s));
    this.#readXR(frame);
    c.frame(performance.now(), dt);
    const seen = new Set<number>();
    let own: RenderEntity | undefined;
    for (const e of c.entities()) {
      seen.add(e.id);
      this.#draw(e);
      if (e.own) own = e;
    }
    for (const [id, v] of this.#views) {
      if (!seen.has(id)) {
        this.#scene.remove(v.object, v.shadow);
        this.#views.delete(id);
      }
    }
    this.#placeCamera(own);
    r.render(this.#scene, this.#camera);
    this.#adaptResolution(t);
    this.framesRendered++;
  }

  #placeCamera(own: RenderEntity | undefined): void {
    const at = own?.pos ?? { x: 0, y: 0, z: 0 };
    if (this.#renderer?.xr.isPresenting) {
      this.#rig.position.set(at.x, 0, at.z);
      return;
    }
    const { yaw, pitch } = this.client.controls;
    const target = new THREE.Vector3(at.x, 1.3, at.z);
    const back = new THREE.Vector3(
      Math.sin(yaw) * Math.cos(pitch),
      -Math.sin(pitch),
      Math.cos(yaw) * Math.cos(pitch),
    );
    this.#rig.position.copy(target).addScaledVector(back, this.#distance);
    this.#rig.position.y = Math.max(0.4, this.#rig.position.y);
    this.#camera.position.set(0, 0, 0);
    this.#camera.lookAt(target);
  }

  #view(e: RenderEntity): EntityView {
    let v = this.#views.get(e.id);
    if (v && v.kind === e.kind) return v;
    if (v) this.#scene.remove(v.object, v.shadow);
    const color = PALETTE[e.color % PALETTE.length];
    const shadow = new THREE.Mesh(
      new THREE.CircleGeometry(1, 24),
      new THREE.MeshBasicMaterial({ color: 0x000000, transparent: true, opacity: 0.28, depthWrite: false }),
    );
    shadow.rotation.x = -Math.PI / 2;
    shadow.position.y = 0.004;
    let object: THREE.Object3D;
    let avatar: AvatarMeshes | undefined;
    if (e.kind === 'ball') {
      object = new THREE.Mesh(
        new THREE.SphereGeometry(1, 24, 16),
        new THREE.MeshLambertMaterial({ map: ballTexture(color) }),
      );
    } else if (e.kind === 'box') {
      const geo = new THREE.BoxGeometry(2, 2, 2);
      object = new THREE.Mesh(geo, new THREE.MeshLambertMaterial({ color }));
      object.add(
        new THREE.LineSegments(
          new THREE.EdgesGeometry(geo),
          new THREE.LineBasicMaterial({ color: 0x10151f }),
        ),
      );
    } else {
      avatar = this.#avatar(e, color);
      object = avatar.group;
    }
    this.#scene.add(object, shadow);
    v = { kind: e.kind, object, shadow, avatar };
    this.#views.set(e.id, v);
    return v;
  }

  #avatar(e: RenderEntity, color: number): AvatarMeshes {
    const group = new THREE.Group();
    const mat = new THREE.MeshLambertMaterial({ color });
    const dark = new THREE.MeshLambertMaterial({ color: 0x10151f });
    const torso = new THREE.Mesh(new THREE.CapsuleGeometry(0.2, 0.9, 6, 12), mat);
    const head = new THREE.Group();
    const skull = new THREE.Mesh(new THREE.SphereGeometry(0.15, 20, 14), mat);
    skull.scale.set(1, 1.1, 1);
    const visor = new THREE.Mesh(new THREE.BoxGeometry(0.22, 0.08, 0.08), dark);
    visor.position.set(0, 0.02, -0.12);
    head.add(skull, visor);
    const handGeo = new THREE.BoxGeometry(0.08, 0.1, 0.15);
    const left = new THREE.Mesh(handGeo, mat);
    const right = new THREE.Mesh(handGeo, mat);
    const label = labelSprite(e.name, color);
    const ring = new THREE.Mesh(
      new THREE.RingGeometry(0.38, 0.45, 32),
      new THREE.MeshBasicMaterial({ color: 0xffffff, transparent: true, opacity: 0.8 }),
    );
    ring.rotation.x = -Math.PI / 2;
    ring.visible = e.own;
    group.add(torso, head, left, right, label, ring);
    return { group, torso, head, left, right, label, ring };
  }

  #draw(e: RenderEntity): void {
    const v = this.#view(e);
    if (v.avatar) {
      const a = v.avatar;
      const mat = a.torso.material as THREE.MeshLambertMaterial;
      if (mat.transparent !== e.away) {
        mat.transparent = e.away;
        mat.opacity = e.away ? 0.3 : 1;
        mat.needsUpdate = true;
      }
      // The group stays at the origin: head and hands are world poses; the torso hangs below the head.
      const head = e.head?.pos ?? { x: e.pos.x, y: 1.6, z: e.pos.z };
      setPos(a.head, head);
      if (e.head) setRot(a.head, e.head.rot);
      a.torso.position.set((head.x + e.pos.x) / 2, Math.max(0.3, head.y - 0.87), (head.z + e.pos.z) / 2);
      setRot(a.torso, e.rot);
      if (e.left) {
        setPos(a.left, e.left.pos);
        setRot(a.left, e.left.rot);
      }
      if (e.right) {
        setPos(a.right, e.right.pos);
        setRot(a.right, e.right.rot);
      }
      a.label.position.set(head.x, head.y + 0.38, head.z);
      a.label.visible = !e.own;
      a.ring.position.set(e.pos.x, 0.01, e.pos.z);
      // In XR the own head is the camera: do not draw it in front of the eyes.
      a.head.visible = !(e.own && this.#renderer?.xr.isPresenting);
      v.shadow.position.set(e.pos.x, 0.004, e.pos.z);
      v.shadow.scale.setScalar(0.35);
      return;
    }
    setPos(v.object, e.pos);
    setRot(v.object, e.rot);
    v.object.scale.setScalar(e.size);
    v.shadow.position.set(e.pos.x, 0.004, e.pos.z);
    v.shadow.scale.setScalar(e.size * 1.05);
  }
}
customElements.define('demo-scene', DemoScene);
