import streamlit as st
st.title("embedding")
st.info("Coming soon")
